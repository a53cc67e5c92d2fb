import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { type Cents, centsToAmount } from '../src/money.js';
import { type DriveRun, drive, postGraphql } from './support.js';

/**
 * The transfer bench's GraphQL clients, and the thread they run on. The clients are the load, not the
 * system under test: on the main thread their HTTP work (fetch, JSON) took about a sixth of the event
 * loop the server needs, which the raw-SQL baseline does not pay. In a worker thread they are outside
 * the server's event loop, as real clients would be (BENCH_CLIENTS_IN_WORKER=0 keeps them inside).
 */

/** A transfer is a pair of operations: [transferOut ms, transferIn ms]. */
export type Pair = [number, number];

export interface PairRequest {
  name: string;
  url: string;
  /** [userId, token] of every bench user `user-0`… */
  tokens: [string, string][];
  users: number;
  expiryIso: string;
  hot: boolean;
  total: number;
  clients: number;
}

/** Two distinct users of `count`, or the hot giver and someone else. */
export function pickPair(prefix: string, count: number, hot: boolean): [string, string] {
  const giver = hot ? 0 : Math.floor(Math.random() * count);
  let receiver = Math.floor(Math.random() * count);
  while (receiver === giver) receiver = Math.floor(Math.random() * count);
  return [`${prefix}${giver}`, `${prefix}${receiver}`];
}

export const randomCents = (): Cents => 1 + Math.floor(Math.random() * 100);

const TRANSFER_OUT = `mutation($input: TransferOutInput!) { transferOut(input: $input) { voucherCode } }`;
const TRANSFER_IN = `mutation($code: String!) { transferIn(voucherCode: $code) { status } }`;

type TransferOutData = { transferOut: { voucherCode: string } };
type TransferInData = { transferIn: { status: string } };

/** Drives `total` transferOut + transferIn pairs with `clients` closed-loop clients, on this thread. */
export function drivePairs(request: PairRequest): Promise<DriveRun<Pair>> {
  const tokens = new Map(request.tokens);
  return drive({ name: request.name, total: request.total, clients: request.clients }, async (): Promise<Pair> => {
    const [giver, receiver] = pickPair('user-', request.users, request.hot);
    const t0 = performance.now();
    const out = await postGraphql<TransferOutData>(request.url, tokens.get(giver)!, TRANSFER_OUT, {
      input: {
        receiverId: receiver,
        items: [{ amount: centsToAmount(randomCents()), expiryDate: request.expiryIso }],
      },
    });
    const t1 = performance.now();
    const redeemed = await postGraphql<TransferInData>(request.url, tokens.get(receiver)!, TRANSFER_IN, {
      code: out.transferOut.voucherCode,
    });
    if (redeemed.transferIn.status !== 'SUCCESS') throw new Error(`transferIn ${redeemed.transferIn.status}`);
    return [t1 - t0, performance.now() - t1];
  });
}

interface WorkerAnswer {
  run: Omit<DriveRun<Pair>, 'failures'> & { failures: [string, number][] };
}

/** The same drive in a worker thread; resolves with its run once the worker is done. */
export function drivePairsInWorker(request: PairRequest): Promise<DriveRun<Pair>> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./transfer-clients.worker.mjs', import.meta.url), {
      workerData: { kind: 'transfer-clients', request },
    });
    worker.once('message', (answer: WorkerAnswer) => {
      resolve({ ...answer.run, failures: new Map(answer.run.failures) });
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`transfer client worker exited with ${code}`));
    });
  });
}

if (!isMainThread && (workerData as { kind?: string } | null)?.kind === 'transfer-clients') {
  const { request } = workerData as { request: PairRequest };
  void drivePairs(request).then((run) => {
    const answer: WorkerAnswer = { run: { ...run, failures: [...run.failures] } };
    parentPort!.postMessage(answer);
  });
}
