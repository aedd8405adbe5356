"""The demo model's recipe, on the CLI side because it drives ``nova prepare`` / ``nova train`` and
nova's MP4 writer; the pure parts (scenes, components) live in :mod:`nova_core.demo`.

``dataset``  a folder of rendered clips/images with captions, as ``nova prepare`` reads it
``recipe``   ``python -m nova_cli.demo.recipe OUTDIR``: data -> VAE -> nova prepare -> nova train
"""
