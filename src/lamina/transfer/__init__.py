"""Moving images in and out of the store: pull, push, save, load."""
