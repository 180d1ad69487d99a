"""``python -m inception_jax.tools.data_service dispatcher|worker ...``: a tf.data service.

Training with ``--config.data_service=HOST:P`` then decodes and augments its examples on the
workers (``inception_jax.data.service``). Start the dispatcher with the full list of its workers
(each epoch is split over exactly that list), then each worker under the name it is listed as::

  python -m inception_jax.tools.data_service dispatcher --port 5050 \\
      --workers cpu1:5051,cpu2:5051 [--work_dir DIR]
  python -m inception_jax.tools.data_service worker --dispatcher HOST:5050 --port 5051  # on cpu1
  python -m inception_jax.tools.data_service worker --dispatcher HOST:5050 --port 5051  # on cpu2

Each blocks until killed. Workers read ``config.data_dir`` at the same path as the trainer.
"""

from __future__ import annotations

import os
import socket
import sys

from inception_jax.errors import ArgumentParser, UserError, run_cli


def main(argv: list[str] | None = None) -> None:
  parser = ArgumentParser(prog='python -m inception_jax.tools.data_service',
                          description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest='role', required=True)
  d = sub.add_parser('dispatcher', help='the dispatcher the trainers and workers connect to')
  d.add_argument('--port', type=int, required=True, help='port to listen on')
  d.add_argument('--workers', required=True,
                 help='HOST:PORT of every worker, comma-separated, as each worker is named '
                      '(its --host and --port)')
  d.add_argument('--work_dir', default=None,
                 help='journal of the dispatcher state, so a restarted dispatcher recovers it')
  w = sub.add_parser('worker', help='a worker that decodes and augments for the trainers')
  w.add_argument('--dispatcher', required=True, help='HOST:PORT of the dispatcher')
  w.add_argument('--port', type=int, default=5051, help='port to listen on (default 5051)')
  w.add_argument('--host', default=socket.gethostname(),
                 help='name the trainers reach this host by, as listed in the dispatcher\'s '
                      '--workers (default: this host\'s name)')
  args = parser.parse_args(argv)
  if not 0 < args.port < 65536:
    raise UserError(f'--port must be in 1..65535, got {args.port}')
  from inception_jax.data import service  # pylint: disable=g-import-not-at-top  # TF: after the flags
  if args.role == 'dispatcher':
    workers = [w.strip() for w in args.workers.split(',') if w.strip()]
    server = service.start_dispatcher(args.port, workers, args.work_dir)
    print(f'tf.data service dispatcher listening on port {args.port} for the {len(workers)} '
          f'workers {",".join(workers)}', flush=True)
  else:
    server = service.start_worker(args.dispatcher, args.port, args.host)
    print(f'tf.data service worker {args.host}:{args.port} listening, registered with the '
          f'dispatcher at {args.dispatcher}', flush=True)
  server.join()


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  run_cli(lambda: main(sys.argv[1:]))
