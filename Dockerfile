# One image for every cachegate process of compose.yaml (backends, proxy, migrations, key generation).
FROM python:3.11-slim

WORKDIR /app
# The dependencies first, from setup.cfg alone: a change to the code (or the README) reuses this layer; only
# a change to setup.cfg installs them again. The project itself comes after the code, without dependencies.
COPY setup.cfg ./
RUN python -c "import configparser; c = configparser.ConfigParser(); c.read('setup.cfg'); \
print(c['options']['install_requires'])" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY pyproject.toml setup.cfg README.md LICENSE ./
COPY cachegate ./cachegate
COPY proxy ./proxy
COPY strategies ./strategies
COPY backends ./backends
COPY stack ./stack
COPY loadtest ./loadtest
COPY invalidator ./invalidator
RUN pip install --no-cache-dir --no-deps . && find /app -name __pycache__ -prune -exec rm -rf {} +
COPY config.yaml ./

# Not root: the processes need no privilege, only the key folders (volumes inherit this ownership).
RUN useradd --system --no-create-home cachegate \
    && mkdir -p /run/cachegate/public /run/cachegate/private \
    && chown cachegate /run/cachegate/public /run/cachegate/private \
    && chmod 700 /run/cachegate/private
USER cachegate
ENV CACHEGATE_CONFIG=/app/config.yaml
EXPOSE 8888 8081 8082 8083
CMD ["cachegate", "proxy"]
