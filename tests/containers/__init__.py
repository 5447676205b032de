"""`make containers`: the image, the compose stack and Prometheus, built and run with podman."""
