"""PuFace (Wen et al., arXiv 2406.02253) and the cloaking attacks it defends against, as one
sub-product: ``data`` (identity chips, per-identity splits), ``faceid`` (the face-recognition
models under attack), ``cloak`` (Fawkes, LowKey, amplified cloaks), ``purifier`` (RedNet, its
training data and module, the defenses it is compared with) and ``evaluation`` (the protection
table, sweeps and pictures)."""
