"""The network: the Res16UNet backbone, the two heads, their typed outputs, mixed precision."""
