"""Composite modules (Boltz: ``modules`` vs ``layers``): blocks assembled from
:mod:`boltzkinema.model.layers`, one module per network layout."""
