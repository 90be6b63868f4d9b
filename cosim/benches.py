"""The testbenches that ``python -m cosim`` (``make sim`` / ``make sim-long``) runs.

Add one :class:`Testbench` per cocotb testbench module; ``vectors``/``long_vectors`` are the
``COSIM_VECTORS`` of a normal and of a long regression (``verilator_vectors``, when given,
replaces ``vectors`` on Verilator: the full count there, a smoke count on Icarus, which runs
some 50x slower); ``bulk``: the long regression runs in
the bulk mode (:mod:`cosim.bulk`: vectors streamed from memories in a generated wrapper).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SPE_FORMATS", "TESTBENCHES", "Testbench"]


@dataclass(frozen=True)
class Testbench:
    """A cocotb testbench module run on a registered unit (see :func:`cosim.runner.run_cosim`).

    ``mutants`` lists the broken reference models the testbench offers; the harness checks
    that each of them fails. ``offline``: the golden run records a trace (a stream plan's
    responses, :mod:`cosim.stream`, or a reactive bench's cycles, :mod:`cosim.replay`), and
    its reference mutants are checked against it (:func:`cosim.replay.check_reference_mutant`)
    instead of simulating them again (every testbench here does; ``False`` simulates each
    mutant). ``testcase``: the cocotb test of a module with several (the SPU's modes).
    ``simulated``: reference mutants that change what a reactive bench drives (it reads other
    columns), so no recorded run can replay them: they are simulated, in the unit's job,
    instead of checked offline (a replay that diverges is simulated too, after the fact).
    """
    name: str
    unit: str
    module: str
    vectors: int = 2000
    long_vectors: int = 100_000
    mutants: tuple[str, ...] = ()
    offline: bool = True
    testcase: str | None = None
    bulk: bool = False
    verilator_vectors: int | None = None
    simulated: tuple[str, ...] = ()

    def __post_init__(self):
        unknown = set(self.simulated) - set(self.mutants)
        if unknown:
            raise ValueError(f"testbench {self.name}: simulated mutants {sorted(unknown)} are "
                             f"not among its mutants {self.mutants}")

    def default_vectors(self, sim: str) -> int:
        """The vectors of a normal regression on simulator ``sim``."""
        if sim == "verilator" and self.verilator_vectors is not None:
            return self.verilator_vectors
        return self.vectors


#: Formats of the SPE datapath slices ``spe_<format>[_sr]``.
SPE_FORMATS = ("fp16", "e4m3", "e5m2", "int8", "mx8")

TESTBENCHES: dict[str, Testbench] = {tb.name: tb for tb in [
    # The SPU with two bank models (hw/spu_sim.py); vectors = COMPs (64 per row pair).
    # Mutants: cosim.spu_bench.SpuBench.MUTANTS (score mode does not round).
    *(Testbench(f"spu_{mode}", unit="spu_mx8_sim", module="cosim.tb_spu",
                testcase=f"spu/mode={mode}",
                vectors=512, verilator_vectors=10_000, long_vectors=40_000,
                mutants=("swap_banks",) if mode == "score" else ("swap_banks", "nearest_only"),
                simulated=("swap_banks",))
      for mode in ("state_update", "score", "attend")),
    # The SPU with the fused update (Spu(fused=True): state update, attend sums and folds with
    # one rounding); mutant `unfused` (the model rounds products and sums separately).
    *(Testbench(f"spu_fused_{mode}", unit="spu_mx8_fused_sim", module="cosim.tb_spu",
                testcase=f"spu/mode={mode}",
                vectors=512, verilator_vectors=10_000, long_vectors=40_000,
                mutants=("swap_banks",) if mode == "score" else
                ("swap_banks", "nearest_only", "unfused"),
                simulated=("swap_banks",))
      for mode in ("state_update", "score", "attend")),
    # MX8 arithmetic units (hw/mx_*.py, hw/lfsr.py); mutants: cosim.mx_vectors.Expect.MUTANTS.
    Testbench("mx_mul", unit="mx_mul", module="cosim.tb_mx", vectors=3000,
              verilator_vectors=100_000, long_vectors=1_000_000, bulk=True,
              mutants=("stream_on_nearest", "nearest_only")),
    Testbench("mx_mul_scalar", unit="mx_mul_scalar", module="cosim.tb_mx", vectors=3000,
              verilator_vectors=100_000, long_vectors=1_000_000, bulk=True,
              mutants=("drop_mu_a",)),
    Testbench("mx_add", unit="mx_add", module="cosim.tb_mx", vectors=3000,
              verilator_vectors=100_000, long_vectors=1_000_000, bulk=True,
              mutants=("stream_on_nearest", "drop_mu_a")),
    Testbench("mx_dot", unit="mx_dot", module="cosim.tb_mx", vectors=3000,
              verilator_vectors=100_000, long_vectors=1_000_000, bulk=True,
              mutants=("drop_mu_a",)),
    Testbench("lfsr", unit="lfsr", module="cosim.tb_lfsr", vectors=3000,
              long_vectors=1_000_000),
    # fp16 baseline PIM units with their bank models (hw/pim_fp16_sim.py); vectors =
    # sub-chunks; mutants: cosim.pim_fp16_bench.MUTANTS. `sequential_dot` differs from the
    # reference only where sequential and tree fp16 sums round differently (a few % of the
    # sub-chunks): 512 vectors (500 for the mutant runs) make catching it seed-independent.
    *(Testbench(u, unit=f"{u}_sim", module="cosim.tb_pim_fp16", vectors=512, long_vectors=2048,
                mutants=("sequential_dot", "no_outer"))
      for u in ("timemux_fp16_naive", "pipelined_fp16_perbank", "timemux_fp16_perbank")),
    # The HBM-PIM PCU with its bank models (hw/hbmpim_pcu_sim.py): whole heads of the three
    # programs; vectors = data columns checked per mode; mutant: cosim.hbmpim_pcu_bench.MUTANTS
    # (MAC/MAD rounded once instead of twice).
    *(Testbench(u, unit=f"{u}_sim", module="cosim.tb_hbmpim_pcu", vectors=128,
                verilator_vectors=512, long_vectors=4096, mutants=("mac_single_rounding",),
                simulated=("mac_single_rounding",))
      for u in ("hbmpim_pcu", "hbmpim_pcu_perbank")),
    # SPE datapath slices by number format (hw/spe_float.py, hw/spe_int8.py, hw/spe_mx8.py);
    # vectors = operations; mutants: cosim.spe_bench.MUTANTS. Icarus runs them at 0.1-0.7 k
    # cycles/s: a smoke count that spans the MX8 class enumeration (284 operations) and a
    # second batch (restart_lfsr differs from it on).
    *(Testbench(f"spe_{f}{sr}", unit=f"spe_{f}{sr}", module="cosim.tb_spe", vectors=400,
                verilator_vectors=100_000, long_vectors=400_000, bulk=True,
                mutants=("no_outer", "nearest_only", "restart_lfsr") if sr else ("no_outer",))
      for f in SPE_FORMATS for sr in ("", "_sr")),
    # The fused MX8 slice (SpeMx8(fused=True), one rounding); mutant `unfused`: the reference
    # rounds the products and the sum separately.
    *(Testbench(f"spe_mx8_fused{sr}", unit=f"spe_mx8_fused{sr}", module="cosim.tb_spe",
                vectors=400, verilator_vectors=100_000, long_vectors=400_000,
                mutants=(("no_outer", "nearest_only", "restart_lfsr") if sr else ("no_outer",))
                + ("unfused",))
      for sr in ("", "_sr")),
]}
