"""Host readers: psutil (RAM, CPU) and RAPL powercap energy counters."""
