#!/bin/sh
# Creates (or upgrades) Temporal's two databases on the shared PostgreSQL. Safe to run again: `create`
# of an existing database fails harmlessly, and `update-schema` applies only what is missing.
set -eu
sql() { temporal-sql-tool --plugin postgres12 --ep postgresql -p 5432 -u "$POSTGRES_USER" --pw "$POSTGRES_PWD" "$@"; }
for db in temporal temporal_visibility; do
    sql --db "$db" create || echo "database $db exists"
done
sql --db temporal setup-schema -v 0.0 || true
sql --db temporal update-schema -d /etc/temporal/schema/postgresql/v12/temporal/versioned
sql --db temporal_visibility setup-schema -v 0.0 || true
sql --db temporal_visibility update-schema -d /etc/temporal/schema/postgresql/v12/visibility/versioned
echo "temporal schemas ready"
