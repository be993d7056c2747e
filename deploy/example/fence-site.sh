#!/bin/sh
# Example STONITH hook for drplane (failover { stonith "<site>" { command =
# ["/etc/drplane/fence-site.sh", "<site>"] } }): power off every host of a
# site through its BMC, and exit 0 only once each one reports off. drplane
# runs it before a quorum-loss failover to that site's peer; a non-zero
# exit (or a timeout) means "not fenced" and nothing is promoted.
#
# The BMC addresses and the credentials file are yours to fill in; the
# password is read from a file, never from the command line (ps) or the
# environment of drplane's logs.
set -eu
site=${1:?usage: fence-site.sh SITE}
creds=/etc/drplane/bmc.password
case $site in
  primary) bmcs="10.0.1.110 10.0.1.120" ;;   # db-1, app-1
  dr)      bmcs="10.0.2.110 10.0.2.120" ;;   # db-2, app-2
  *) echo "fence-site.sh: unknown site $site" >&2; exit 2 ;;
esac
for bmc in $bmcs; do
  ipmitool -I lanplus -H "$bmc" -U drplane -f "$creds" chassis power off >/dev/null
done
# Confirm: every host must report off within 20 s.
deadline=$(( $(date +%s) + 20 ))
for bmc in $bmcs; do
  until ipmitool -I lanplus -H "$bmc" -U drplane -f "$creds" chassis power status | grep -q 'is off'; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "fence-site.sh: $bmc still on" >&2; exit 1; }
    sleep 1
  done
  echo "fence-site.sh: $bmc is off"
done
