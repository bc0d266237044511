"""IST_S (Bonechi et al.) TFDS builder from manual downloads; see README.md."""
