/** How a call to a device connected to one node ended, as that node tells the caller's. */
export type Answer =
  | { readonly kind: 'reply'; readonly code: number; readonly message: string }
  | { readonly kind: 'gone' }
  | { readonly kind: 'timeout' };

/** What nodes send each other about calls, on the bus topic of the node addressed (nodeTopic). */
export type NodeMessage =
  | {
      readonly kind: 'call';
      readonly from: string;
      readonly callId: string;
      readonly deviceId: string;
      readonly message: string;
      readonly timeLiveSeconds: number;
    }
  | { readonly kind: 'answer'; readonly callId: string; readonly answer: Answer }
  /** The device connected to another node: the one here is replaced, as on one node. */
  | { readonly kind: 'replaced'; readonly deviceId: string };
