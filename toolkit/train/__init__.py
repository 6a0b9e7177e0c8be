"""GAN training on labelled image folders, and the data builder of the shipped models (not imported at run time).

- `folders.py`: your own data: an ImageFolder (one sub-folder per class) or a Hugging Face imagefolder.
- `materials.py`: builds the 0 A.D. materials data set of `terrain64` (`python -m toolkit.train.materials build`).
- `data.py`: class-balanced random texture crops from a materials build (per-source crop windows, split).
- `augment.py`: DiffAugment (translation, cutout) of the discriminator's inputs.
- `discriminator.py`: the SNGAN projection discriminator.
- `loop.py`: hinge-loss training with EMA, resumable and portable checkpoints, sample sheets, fp16
  export (`python -m toolkit train --data DIR --out RUN`).
"""
