# Common tasks. `make help` lists them.
.PHONY: help run run-current test crds release-manifest cluster-up cluster-down build demo bench-controller bench-backup bench-runtime

help:
	@echo "make run          run the operator on the local control plane (started if needed)"
	@echo "make run-current  run the operator against the cluster in the current kube context"
	@echo "make test         formatting, lints and all tests (starts and stops the local control plane)"
	@echo "make demo         a simulated 3-member MongoCluster on the local control plane, shown Ready"
	@echo "make bench-controller  controller benchmarks (create→Ready, steady-state requests, 300 clusters)"
	@echo "make bench-backup     backup data path (throughput, peak memory for 1 and 4 GiB, next to cat), recording and archiving costs, verification throughput"
	@echo "make bench-runtime    the shipped binary: size, start-to-ready time, idle memory"
	@echo "make crds         regenerate crds/ (and the Helm chart's copy) from the code"
	@echo "make release-manifest  render deploy/install.yaml (one-file install) from the Helm chart"
	@echo "make cluster-up   start the local control plane; eval \"\$$(e2e/cluster.sh env)\" to use it"
	@echo "make cluster-down stop it and remove its state"

build:
	cargo build --locked

# The operator's namespace holds its leader Lease (and, in a real install, its Pods).
OPERATOR_NAMESPACE = kubectl create namespace mongo-operator --dry-run=client -o yaml | kubectl apply --server-side --field-manager=mongo-operator -f - > /dev/null

run: build
	e2e/cluster.sh up > /dev/null
	eval "$$(e2e/cluster.sh env)" && \
	  cargo run --locked -q -- crd | kubectl apply --server-side --field-manager=mongo-operator -f - && \
	  $(OPERATOR_NAMESPACE) && \
	  cargo run --locked -- run

run-current: build
	cargo run --locked -q -- crd | kubectl apply --server-side --field-manager=mongo-operator -f -
	$(OPERATOR_NAMESPACE)
	cargo run --locked -- run

test:
	e2e/test.sh

crds:
	cargo run --locked -q -- crd --dir crds
	cargo run --locked -q -- crd --dir charts/mongo-operator/crds

release-manifest:
	mkdir -p deploy
	e2e/release-manifest.sh > deploy/install.yaml.tmp
	mv deploy/install.yaml.tmp deploy/install.yaml

cluster-up:
	e2e/cluster.sh up

cluster-down:
	e2e/cluster.sh down

demo:
	e2e/demo.sh

bench-controller:
	e2e/cluster.sh up > /dev/null
	eval "$$(e2e/cluster.sh env)" && e2e/with-cluster-dns cargo bench --locked --bench controller

bench-backup:
	e2e/bench/backup.sh
	cargo bench --locked --bench archive
	cargo bench --locked --bench oplog_archive
	e2e/tools.sh ferretdb s3sfs mongotools > /dev/null
	cargo bench --locked --bench verification

bench-runtime:
	e2e/bench/runtime.sh
