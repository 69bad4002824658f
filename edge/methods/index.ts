// The dispatch table: one entry per implemented method id. Ids absent here answer UnknownMethod.
import type { MethodTable } from "../rpc.ts";
import { authMethods } from "./auth.ts";
import { deliveryMethods } from "./delivery.ts";
import { keyMethods } from "./keys.ts";
import { channelMethods } from "./channel.ts";
import { groupMethods } from "./group.ts";
import { userMethods } from "./user.ts";
import { transparencyMethods } from "./transparency.ts";
import { healthMethods } from "./health.ts";
import { deviceMethods } from "./devices.ts";
import { accountMethods } from "./account.ts";
import { blobMethods } from "./blob.ts";
import { recoveryMethods } from "./recovery.ts";
import { p2pMethods } from "./p2p.ts";
import { moderationMethods } from "./moderation.ts";
import { presenceMethods } from "./presence.ts";

export const methods: MethodTable = {
  ...authMethods,
  ...deliveryMethods,
  ...keyMethods,
  ...channelMethods,
  ...groupMethods,
  ...userMethods,
  ...transparencyMethods,
  ...healthMethods,
  ...deviceMethods,
  ...accountMethods,
  ...blobMethods,
  ...recoveryMethods,
  ...p2pMethods,
  ...moderationMethods,
  ...presenceMethods,
};
