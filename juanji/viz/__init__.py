"""Pictures of what a network does: filters, feature maps, conv arithmetic, receptive fields,
hand-set kernels (and learning-rate schedules, in `schedules`). Import the submodule you need
(`from juanji.viz import filters`); this package imports nothing heavy itself.
"""
