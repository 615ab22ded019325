import { type ChildProcess, spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { findTemporalCli } from '../../../src/lib/temporal-cli.js';

/** The Temporal CLI the scripts provisioned (scripts/temporal-cli.sh); never downloaded. */
export function temporalCliPath(): string {
  return findTemporalCli(process.env);
}

/** A real Temporal dev server (in-memory) for one test file. */
export async function startTemporal(extraArgs: string[] = []): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalCliPath() },
      ip: '127.0.0.1',
      extraArgs: ['--log-level', 'error', ...extraArgs],
    },
  });
}

/**
 * A Temporal dev server in a process of our own, persisting to a SQLite file, that a test can stop
 * and start again on the same port and file (a server restart with its state kept).
 */
export interface PersistentTemporal {
  address: string;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the Temporal dev server did not listen on ${port} within ${timeoutMs} ms`);
}

export async function startPersistentTemporal(dbFile: string): Promise<PersistentTemporal> {
  const [port, uiPort] = [await freePort(), await freePort()];
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(
      temporalCliPath(),
      ['server', 'start-dev', '--db-filename', dbFile, '--ip', '127.0.0.1', '--port', String(port), '--ui-port', String(uiPort), '--headless', '--log-level', 'error'],
      { stdio: 'ignore' },
    );
    await waitForPort(port, 30_000);
    // The frontend listens before the namespace is ready; give it a moment to answer RPCs.
    const conn = await Connection.connect({ address: `127.0.0.1:${port}` });
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await conn.workflowService.describeNamespace({ namespace: 'default' });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    await conn.close();
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    });
  };
  await start();
  return {
    address: `127.0.0.1:${port}`,
    async restart() {
      await stop();
      await start();
    },
    stop,
  };
}
