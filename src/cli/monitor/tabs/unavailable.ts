/**
 * Tabs for capabilities this build does not have. They say so plainly and show no data: a tab is
 * wired to a protocol module's read API only once that module has landed.
 */
import type { Tab, TabId } from '../model.js';

export function unavailableTab(id: TabId, title: string, what: string): Tab {
  return {
    id,
    title,
    view: () => ({ kind: 'unavailable', reason: `${what} is not available in this build` }),
  };
}
