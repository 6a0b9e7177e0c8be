"""Training for the toolkit's shipped models: data builders and GAN training (not imported at run time).

- `materials.py`: builds the 0 A.D. materials data set (`python -m toolkit.train.materials build`).
- `data.py`: class-balanced random crops from a compact image folder.
- `discriminator.py`: the SNGAN projection discriminator.
- `loop.py`: hinge-loss training with EMA, resumable checkpoints, sample grids, fp16 export
  (`python -m toolkit.train --data DIR --out RUN`).
"""
