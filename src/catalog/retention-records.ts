/** How many versions of an image retention keeps. */
export interface RetentionPolicy {
  image: string;
  keep: number;
}
