"""The protection evaluation: attack x FR model x defense, the amplification and purifier sweeps,
and the pictures."""
