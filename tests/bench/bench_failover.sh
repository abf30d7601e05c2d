#!/bin/sh
# placeholder: being written
echo "bench_failover: not written yet"
