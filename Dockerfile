# pulse-pipe for GPU machines. Build: docker build -t pulse-pipe .
# Run:   docker run --gpus all -v $PWD/store:/store -v $PWD/manifests:/manifests pulse-pipe run /manifests/quick.lua
# The build stage uses the same scripts as CI and the README (scripts/install-deps.sh, scripts/build.sh).
FROM nvidia/cuda:12.4.1-devel-ubuntu22.04 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh
COPY . .
RUN BUILD_DIR=/build scripts/build.sh -DPULSE_CUDA=ON -DPULSE_FAULT_INJECTION=OFF -DBUILD_TESTING=OFF \
      -DCMAKE_BUILD_TYPE=Release \
 && cmake --install /build --prefix /opt/pulse-pipe

# The runtime image already carries cuBLAS; the same install script brings the libraries pulse-pipe links.
FROM nvidia/cuda:12.4.1-runtime-ubuntu22.04
COPY scripts/install-deps.sh /tmp/
RUN /tmp/install-deps.sh && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh
COPY --from=build /opt/pulse-pipe /opt/pulse-pipe
COPY manifests /manifests
ENV PULSE_STORE=/store
VOLUME /store
WORKDIR /work
ENTRYPOINT ["/opt/pulse-pipe/bin/pulse-pipe"]
CMD ["--help"]
