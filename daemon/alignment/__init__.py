"""Face alignment: warp each detected face onto the 112x112 template the embedder was trained on."""
