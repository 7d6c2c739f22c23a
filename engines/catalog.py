"""The public weights facewatch is built from, each pinned by sha256.

Nothing here is downloaded at import; `facewatch.engines.fetch` reads this list.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GitHubFile:
    """A file in a public GitHub repository at a fixed commit."""

    repo: str
    commit: str
    path: str

    def url(self, mirror: str | None = None) -> str:
        base = (mirror or "https://raw.githubusercontent.com").rstrip("/")
        return f"{base}/{self.repo}/{self.commit}/{self.path}"

    def describe(self) -> str:
        return f"github.com/{self.repo} @ {self.commit[:12]} {self.path}"


@dataclass(frozen=True)
class WheelMember:
    """A file inside a Python wheel, fetched with the ordinary `pip download` client."""

    requirement: str
    wheel_filename: str
    wheel_sha256: str
    member: str

    def describe(self) -> str:
        return f"{self.requirement} wheel, {self.member}"


@dataclass(frozen=True)
class PinnedFile:
    filename: str
    sha256: str
    origin: GitHubFile | WheelMember
    licence: str


_FACENET = dict(
    requirement="facenet-pytorch==2.6.0",
    wheel_filename="facenet_pytorch-2.6.0-py3-none-any.whl",
    wheel_sha256="ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca",
)

PNET = PinnedFile("pnet.pt", "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
                  WheelMember(member="facenet_pytorch/data/pnet.pt", **_FACENET), "MIT")
RNET = PinnedFile("rnet.pt", "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
                  WheelMember(member="facenet_pytorch/data/rnet.pt", **_FACENET), "MIT")
ONET = PinnedFile("onet.pt", "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
                  WheelMember(member="facenet_pytorch/data/onet.pt", **_FACENET), "MIT")
SIRIUS_TFLITE = PinnedFile(
    "MobileFaceNet.tflite", "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
    GitHubFile("syaringan357/Android-MobileFaceNet-MTCNN-FaceAntiSpoofing",
               "d635649e711f5e16e6cd3dc06cbb329cd8d1d3b7", "app/src/main/assets/MobileFaceNet.tflite"),
    "MIT (app), Apache-2.0 (sirius-ai weights); trained on MS1M, research use")
FOAMLIU_PT = PinnedFile(
    "mobilefacenet.pt", "90a00ba1d8b0b688af3deb731ed53dca582e6106805d1bc3cfdef55f570493f4",
    GitHubFile("foamliu/MobileFaceNet", "a6cc9032a659b615f477833e1a70b5e7931bcccc",
               "weights/mobilefacenet.pt"),
    "Apache-2.0; trained on MS1M, research use")

ALL_SOURCES = (PNET, RNET, ONET, SIRIUS_TFLITE, FOAMLIU_PT)

MTCNN_NAMES = {"pnet": "mtcnn-pnet", "rnet": "mtcnn-rnet", "onet": "mtcnn-onet"}
SIRIUS = "mobilefacenet-sirius"
FOAMLIU = "mobilefacenet-foamliu"
FUSED = "mobilefacenet-fused"  # foamliu and sirius in one graph (engines/builders/fused.py)
# The two fused: better than either on LFW's open set at every gallery size, and it names Barack
# Obama on the Hamilton clip at the calibrated threshold, which sirius alone does not; with
# flip it does better still but costs a quarter of the analysed fps on four streams, so flip
# stays off.  README, "Choosing the embedder", has the figures (`facewatch eval openset`,
# `eval video`, `bench pipeline`).
DEFAULT_EMBEDDER = FUSED
DEFAULT_FLIP = False
