"""The ``nova`` command: generate images and videos with NOVA from a shell."""
