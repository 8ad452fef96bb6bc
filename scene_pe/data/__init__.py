"""ScanNet scenes in and out of files: the raw reader, preprocessing, the training dataset and its augmentations."""
