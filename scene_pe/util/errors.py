class SceneError(ValueError):
    """Bad input for one scene: names the scene and the file."""
    def __init__(self, scene: str, path, message: str):
        self.scene, self.path, self.message = scene, str(path), message
        super().__init__(f"{scene}: {path}: {message}")


class RunError(RuntimeError):
    """A run that cannot go on, for the reason its message states (not a bug in the code)."""


class DiskFullError(OSError):
    """No space left while writing ``path``: nothing was written, its previous version is intact."""

    def __init__(self, path):
        import errno

        super().__init__(errno.ENOSPC, "no space left on device while writing it; nothing was written "
                                       "(any previous version is unchanged)", str(path))
