"""Published facts of third-party networks that several floors need (the weight reader, the
layers, the face chips, the identity data), stated once on the lowest floor; imports nothing."""
