"""Building blocks shared by the detector nets (and the ensembles): Keras/TF-compatible layers,
the ConvLSTM, frozen sub-networks and the face backbones."""
