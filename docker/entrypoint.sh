#!/bin/bash
# Entry point of the recsys image: secrets from files, then the service's command. The
# image's `recsys` and `airflow` commands run through it too, so `docker compose exec
# SERVICE recsys ...` gets the same environment as the service. bash, not sh: dash drops
# variables whose names are not shell names, such as RECSYS__SPARK__CONF__spark.cores.max.
set -eu

# Docker secrets arrive as files under /run/secrets. For every variable NAME_FILE set by
# compose.yaml to such a file, export NAME with the file's content, so no secret is written
# in the compose file, in an image layer or in `docker inspect`. (Other *_FILE variables,
# such as Airflow's simple_auth_manager_passwords_file, are paths and stay as they are.)
for var in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)_FILE=\/run\/secrets\/.*/\1/p'); do
  file=$(printenv "${var}_FILE")
  if ! value=$(cat "$file"); then
    echo "recsys-entrypoint: cannot read the secret ${var}_FILE=$file" \
      "(docs/deployment.md: the files must be readable, the folder need not be)" >&2
    exit 1
  fi
  export "$var=$value"
  unset "${var}_FILE"
done

# The DAG's tasks reach the Spark master of conf/cluster.yaml (one place for it).
if [ -n "${AIRFLOW__CORE__EXECUTOR:-}" ] && [ -z "${AIRFLOW_CONN_SPARK_DEFAULT:-}" ]; then
  AIRFLOW_CONN_SPARK_DEFAULT=$(/opt/venv/bin/recsys spark-connection)
  export AIRFLOW_CONN_SPARK_DEFAULT
fi

exec "$@"
