import { parentPort, workerData } from 'node:worker_threads';
import { importJWK, type CryptoKey, type JWK } from 'jose';
import { signToken, type BenchAlg } from './issuer.js';

/** Worker thread for signMany(): signs tokens with jti from..from+count-1. */
const { alg, jwk, kid, issuer, from, count } = workerData as { alg: BenchAlg; jwk: JWK; kid: string; issuer: string; from: number; count: number };
const key = (await importJWK(jwk, alg)) as CryptoKey;
const tokens: string[] = [];
for (let i = 0; i < count; i++) tokens.push(await signToken(alg, key, kid, issuer, `bench-${from + i}`));
parentPort!.postMessage(tokens);
