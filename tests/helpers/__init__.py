"""What several test files share, one module a subject: image folders and the one training
command line (``folders``), comparing two training runs (``runs``), inference fixtures
(``inference``), Caffe files written with the package's protobuf messages (``caffe``), a served
model (``serve``) and the fault-test helpers (``reliability``). Shared pytest fixtures are in
``tests/conftest.py``."""
