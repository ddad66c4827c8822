# An in-memory S3 stand-in for MinIO, for tests only (README.md here): moto's server on
# port 9000. It ignores MinIO's command line, keeps nothing across a restart and checks no
# credentials. `mc ready local` (compose.yaml's health check) asks it for its bucket list.
ARG PYTHON_IMAGE=recsys-standin/python:3.11-bookworm
FROM ${PYTHON_IMAGE}
ARG EXTRA_CA_CERTIFICATES=""
ARG MOTO_VERSION=5.2.6
RUN if [ -n "$EXTRA_CA_CERTIFICATES" ]; then \
      printf '%s\n' "$EXTRA_CA_CERTIFICATES" | awk '/BEGIN CERTIFICATE/ { n++ } \
           n { print > ("/usr/local/share/ca-certificates/extra-" n ".crt") }' \
      && update-ca-certificates; \
    fi \
 && python3.11 -m venv /opt/moto \
 && /opt/moto/bin/pip install --no-cache-dir --disable-pip-version-check \
      --cert /etc/ssl/certs/ca-certificates.crt "moto[server]==${MOTO_VERSION}" \
 && printf '#!/bin/sh\nexec /opt/moto/bin/python -c "import urllib.request; urllib.request.urlopen(\\"http://127.0.0.1:9000/\\")"\n' \
      > /usr/local/bin/mc \
 && chmod 755 /usr/local/bin/mc
EXPOSE 9000
# sh -c drops the arguments of compose.yaml's MinIO command.
ENTRYPOINT ["/bin/sh", "-c", "exec /opt/moto/bin/moto_server --host 0.0.0.0 --port 9000", "s3"]
