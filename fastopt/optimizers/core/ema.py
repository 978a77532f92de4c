"""The weight EMA (Keras's ``use_ema``, Polyak averaging): views, swap and finalize. The
average itself advances inside the kernels' pass (``_template``)."""
from __future__ import annotations


class WeightEMA:
    """``ema_params``, ``swap_ema`` and ``finalize_variable_values``."""

    @property
    def ema_params(self):
        """The moving averages of the parameters (``use_ema``), shaped like them: live views."""
        self._require_ema("ema_params")
        return [p.states["ema"].reshape(p.array.shape) for p in self._params]

    def swap_ema(self):
        """Swap every parameter's values with its moving average, in place (for evaluation:
        call it again to swap back before training on)."""
        self._require_ema("swap_ema")
        for p in self._params:
            tmp = p.flat.copy()
            p.flat[...] = p.states["ema"]
            p.states["ema"][...] = tmp

    def finalize_variable_values(self, var_list=None):
        """Overwrite the parameters with their moving averages (Keras's name; end of training).
        ``var_list`` is accepted for Keras's signature; the optimizer's own parameters are
        the ones overwritten."""
        if self.use_ema:
            for p in self._params:
                p.flat[...] = p.states["ema"]

    def _require_ema(self, what):
        if not self.use_ema:
            raise ValueError(f"{what} needs an optimizer built with use_ema=True")
