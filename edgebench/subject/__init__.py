"""The subject of a study: a base PyTorch model (normalization inside, inputs in [0,1]) and
its data, split into train, calibration and evaluation images that never overlap."""
