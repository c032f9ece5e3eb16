import * as openpgp from 'openpgp';

export interface DemoKey {
  armoredPublicKey: string;
  armoredSecretKey: string;
  fingerprint: string;
}

/**
 * A v4 Curve25519 (legacy encoding) key pair without a passphrase, which GnuPG 2.2 can import and
 * decrypt with. For the demo and tests only: a real recipient's secret key never exists here.
 */
export async function generateDemoKey(name: string, email: string): Promise<DemoKey> {
  const { publicKey, privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ name, email }],
    format: 'object',
    config: { v6Keys: false },
  });
  return {
    armoredPublicKey: publicKey.armor(),
    armoredSecretKey: privateKey.armor(),
    fingerprint: publicKey.getFingerprint().toUpperCase(),
  };
}
