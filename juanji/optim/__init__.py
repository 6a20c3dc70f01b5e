"""Optimisers, learning-rate schedulers and L1 regularisation, following `torch.optim`.

    optimizer = juanji.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = juanji.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=30)
"""

from juanji.optim import lr_scheduler
from juanji.optim.adadelta import Adadelta
from juanji.optim.adagrad import Adagrad
from juanji.optim.adam import Adam
from juanji.optim.adamax import Adamax
from juanji.optim.adamw import AdamW
from juanji.optim.factory import OPTIMIZERS, SCHEDULERS, build_optimizer, build_scheduler
from juanji.optim.nadam import NAdam
from juanji.optim.optimizer import NonFiniteStepError, Optimizer
from juanji.optim.regularization import L1Proximal, soft_threshold_
from juanji.optim.rmsprop import RMSprop
from juanji.optim.sgd import SGD

__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "L1Proximal",
    "NAdam",
    "NonFiniteStepError",
    "Optimizer",
    "RMSprop",
    "SGD",
    "build_optimizer",
    "build_scheduler",
    "lr_scheduler",
    "soft_threshold_",
]
