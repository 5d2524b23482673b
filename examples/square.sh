#!/bin/sh
# A raygent worker speaking the line protocol: one number per line on stdin,
# its square on stdout, one line per item, in order.
while read -r x; do
  echo $((x * x))
done
