"""The demo model: a tiny NOVA checkpoint trained by nova itself on procedurally drawn clips.

``scenes``   the grammar and the renderer (one shape moving over a plain background)
``components`` the checkpoint's parts at demo size (VAE, Phi + tokenizer, DDPM, transformer config)

The recipe that renders the data and trains the checkpoint is :mod:`nova_cli.demo.recipe` (it drives
``nova prepare`` / ``nova train``).
"""
