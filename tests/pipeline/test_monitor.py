"""pipeline._monitor.StepMonitor: CPU time of the process tree of a step."""

import subprocess
import sys
import time

from spectrotomo.pipeline._monitor import StepMonitor

_BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass"


def test_cpu_of_a_child_that_exits_during_the_step_counts_once():
    # sampled while it runs, then reaped into this process's children_* times:
    # it used to count twice (2.0 CPU s for a 1.0 s child)
    with StepMonitor("step", cpu_interval=0.05) as mon:
        child = subprocess.Popen([sys.executable, "-c", _BURN])
        time.sleep(0.5)  # the sampler sees it alive
        child.wait()
    assert 1.0 <= mon.record.cpu_seconds < 1.6, mon.record.line()
