"""Activation functions."""

from juanji.ops import activation

__all__ = ["relu", "sigmoid", "tanh"]

def relu(input, inplace=False):
    return activation.Relu.apply(input)


def sigmoid(input):
    return activation.Sigmoid.apply(input)


def tanh(input):
    return activation.Tanh.apply(input)
