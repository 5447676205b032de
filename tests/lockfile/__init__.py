"""The lock file and what installs from it (make lock, the image, the build backend's pins)."""
