# Stand-in for python:3.11-slim-bookworm: Debian's own Python 3.11 (README.md here).
ARG DEBIAN_IMAGE=recsys-standin/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3.11 python3.11-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
CMD ["python3.11"]
