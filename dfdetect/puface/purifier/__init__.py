"""PuFace (Wen et al., arXiv 2406.02253): a RedNet purifier trained on natural and amplified cloaked
faces with an image + feature loss, the defenses it is compared with, and the protection
evaluation (attack x FR model x defense)."""
