"""The face library: every published track kept with its best face, grouped when unknown,
searchable by face, and the edits that name faces from the camera (issue 9).

- `records.TrackRecord`: what the inference process hands over per published track segment;
- `store.LibraryStore`: the interface; `sqlite_store.SqliteLibrary`: the store on one machine;
- `writer.run_library`: the `library` child process (`LibraryWriter` is its testable core);
- `clusters`, `search`, `operations`: grouping, search by face, assign / not / undo / split /
  dismiss, for the CLI (`facewatch faces|clusters`) and the API.
"""

from facewatch.library.records import Named, RecordError, TrackRecord, Unnamed, Verdict
from facewatch.library.store import (
    Action,
    Cluster,
    Face,
    FaceQuery,
    LibraryStore,
    NotFoundError,
    StorageError,
)
from facewatch.library.writer import LibraryWriter, WriterSettings, library_dir, run_library

__all__ = [
    "Action", "Cluster", "Face", "FaceQuery", "LibraryStore", "LibraryWriter", "Named",
    "NotFoundError", "RecordError", "StorageError", "TrackRecord", "Unnamed", "Verdict",
    "WriterSettings", "library_dir", "run_library",
]
