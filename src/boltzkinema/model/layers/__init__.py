"""The layer library both diffusion networks assemble from (Boltz: ``layers`` vs ``modules``).

A layer here knows nothing of the network that holds it; the blocks that assemble layers are in
:mod:`boltzkinema.model.modules` (``native``, ``boltz2``), the networks that assemble blocks in
:mod:`boltzkinema.model.network` and :mod:`boltzkinema.model.boltz2_network`.

* :mod:`.attention`: temporal attention with the exponential-decay bias (both networks), windowed
  atom and pair-biased token attention (native), Boltz-2's gated pair-biased attention;
* :mod:`.transition`: SwiGLU transitions, plain and conditioned (both AF3's Algorithm 25 with
  AdaLN, as Boltz-2 has it, and the native layout's scale-and-shift variant);
* :mod:`.embedding`: the frozen Fourier embedding (noise level, frame times) and Boltz-2's
  relative position encoding;
* :mod:`.frames`: the per-frame conditioning (given frames, frame spacing) both networks add;
* :mod:`.token_maps`: atoms to tokens and back by gather and ``index_add``;
* :mod:`.precision`: the float32 regions Boltz keeps under mixed precision.
"""
