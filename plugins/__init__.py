"""ftkit's built-in plugins. Each sub-package registers through the ``ft``
entry-point group exactly like a third-party plugin package does."""
