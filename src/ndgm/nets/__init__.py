"""Models: small MLPs for curvature studies and the VGG family of the paper (no torchvision)."""
