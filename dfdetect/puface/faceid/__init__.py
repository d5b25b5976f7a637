"""Face-recognition models under cloaking attack (PuFace, FaceCure protocol): a linear probe and
1-nearest-neighbour over the frozen dlib ResNet's descriptors, and the network fine-tuned end to
end; attack success rate and normal accuracy."""
