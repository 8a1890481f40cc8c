/**
 * The Worker entry the workers tests run: the production entry, with one test hook. Every
 * Durable-Object-to-Durable-Object call into the identity index first passes a *hold point*
 * at the emulator (`/_emulator/hold-point`), so the interleaving explorer can hold it like a
 * GitHub request. Nothing else differs; production code has no test hook.
 */
import { IdentityIndex as ProductionIdentityIndex } from "../../src/identity-index";
import { EMULATOR_URL } from "./env";

export { default, BrokerApi, InstallationActor, UserActor } from "../../src/index";

async function holdPoint(name: string): Promise<void> {
  const res = await fetch(`${EMULATOR_URL}/_emulator/hold-point?name=${encodeURIComponent(name)}`, { method: "POST" });
  await res.body?.cancel();
}

export class IdentityIndex extends ProductionIdentityIndex {
  override async link(input: { appType: string; userId: string }): Promise<void> {
    await holdPoint("index.link");
    return super.link(input);
  }

  override async unlink(input: { appType: string; userId: string }): Promise<void> {
    await holdPoint("index.unlink");
    return super.unlink(input);
  }

  override async links(input: { appType: string }): Promise<{ userId: string; linkedAt: number }[]> {
    await holdPoint("index.links");
    return super.links(input);
  }

  override async users(input: { appType: string }): Promise<string[]> {
    await holdPoint("index.users");
    return super.users(input);
  }
}
