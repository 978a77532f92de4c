"""The common core of every optimizer, one module per concern, composed by ``base.Optimizer``.

In the order a step meets them (DESIGN.md section 3):

- ``groups``: parameter groups (torch's dicts; an edit takes effect at the next step), their
  validation, and the parameters' records;
- ``storage``: the state arrays: allocation once in staggered flat buffers, their shapes, the
  byte spans checked for overlap (where the storage modes go);
- ``options``: the training-loop options (clipping, weight EMA, gradient accumulation, the
  non-finite check, flush-to-zero) as validated properties;
- ``plan``: the kernel calls of a step for one set of gradient arrays, validated once;
- ``step``: the step pipeline: grads -> norm pass (clip, finite check) -> one kernel call per run
  of adjacent parameters -> counters; accumulation windows, EMA and unscaling in order;
- ``state_dict``: ``state_dict`` / ``load_state_dict`` in torch's layout, checked before any change;
- ``ema``: the weight EMA's views, swap and finalize.
"""
