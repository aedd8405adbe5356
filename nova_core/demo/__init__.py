"""The demo model: a tiny NOVA checkpoint trained by nova itself on procedurally drawn clips.

``scenes``   the grammar and the renderer (one shape moving over a plain background)
``dataset``  a folder of rendered clips/images with captions, as ``nova prepare`` reads it
``components`` the checkpoint's parts at demo size (VAE, Phi + tokenizer, DDPM, transformer config)
``recipe``   ``python -m nova_core.demo.recipe OUTDIR``: data -> VAE -> nova prepare -> nova train
"""
