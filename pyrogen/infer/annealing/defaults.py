"""The defaults of the annealing engine, in one place (module constants: change them here).

``ais()``, ``smc()``, ``reverse_ais()`` and the ``AIS()`` / ``SMC()`` normalizers read these
at call time, so a measured change of a default is a one-line edit of this file. Each value
says where it was measured; a value without a measurement says so.
"""

from __future__ import annotations

#: Default number of inverse temperatures of :func:`~pyrogen.infer.annealing.ais` and
#: :func:`~pyrogen.infer.annealing.reverse_ais` when ``betas`` is ``None``. Re-measured in
#: issue 14 (``benchmarks/bench_ais.py --only pool``, six MNIST 784 x 15-22 RBMs, exact log Z):
#: with 100 chains every error was within 3 reported se; se ~0.03 on CD-1 models but 0.13-0.19
#: on PCD-trained ones (2/5 and 1/5 runs within 0.1 nats there). Fewer temperatures with more
#: chains at equal cost (1,000 x 1,000; 3,000 x 300) were biased low on the PCD models beyond
#: their se, so the value was kept; ~12 CPU s on 784x20 (the issue's 5 s is not reached).
DEFAULT_NUM_BETAS = 10000

#: Default number of chains of :func:`~pyrogen.infer.annealing.ais` and ``AIS()`` (kept at 100
#: by the same measurement: chains shrink the se only once the temperatures suffice).
DEFAULT_NUM_CHAINS = 100

#: Default shape of the fixed schedule (:func:`~pyrogen.infer.annealing.schedule`).
DEFAULT_SCHEDULE = "sm"

#: SMC: resample when the ESS of the weights falls below this fraction of the chains.
SMC_RESAMPLE_THRESHOLD = 0.5

#: SMC adaptive schedule: the next temperature is chosen so that the conditional ESS of the
#: incremental weights equals this fraction of the chains (Zhou, Johansen & Aston 2016).
#: Measured (issue 14, ``benchmarks/bench_ais.py --only smc --seeds 3``, six MNIST 784 x 15-22
#: RBMs, exact log Z): at 0.99 the schedule has ~100 temperatures and, with 100 particles, is
#: biased low by 0.5-1.6 nats on three of the four trained models (0/3 runs within 3 se on one);
#: at 0.999 (~300 temperatures, 2-3 CPU s) 3/3 runs within 0.1 nats on the three CD-trained
#: models and errors of -0.1 to -0.5 on the PCD ones (the default ``ais()``, 12 CPU s, does
#: better there); 0.9999 (~1,000 temperatures, ~11 CPU s with 300 particles) did not fix the
#: hardest model (-0.47 mean error on the PCD-1 20-epoch one).
SMC_TARGET_CESS = 0.999

#: SMC: kernel moves per temperature. Measured with the row above: 3 moves instead of 1
#: (100 particles, target 0.999, +30% CPU) helped on two PCD models and hurt on one CD model;
#: kept at 1.
SMC_NUM_MOVES = 1

#: SMC adaptive schedule: the most temperatures before giving up (an error, not a silent stop).
SMC_MAX_BETAS = 100000

#: Warn (:class:`~pyrogen.infer.annealing.AISWarning`) when the final ESS is below this
#: fraction of the chains: the standard error is then itself unreliable. Measured (issue 14,
#: ``benchmarks/bench_ais.py --only pool``, 473 runs on six MNIST 784 x 15-22 RBMs, exact log Z):
#: 56 of the 63 runs whose error exceeded 3 reported se had ESS < 0.2 M (19% of those runs
#: failed, 3.8% of the runs above); at 0.05, 54 of the 63 failures went unwarned.
WARN_ESS_FRACTION = 0.2

#: SMC: warn when fewer time-0 ancestors ("Eves") than this survive the resampling steps (the
#: genealogy estimate of the standard error is then meaningless).
WARN_MIN_EVES = 10

#: Chains per random-number block (see :class:`pyrogen._random.ChainRNG`).
CHAIN_BLOCK_SIZE = 64
